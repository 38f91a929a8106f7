-- The change feed the API tails (flowlens.api.feed).

-- name: feed_keys
-- Keys of the trailing window, measured on the database's clock (the one that stamped the
-- rows): from the previous read's cutoff (`since`), so that nothing is skipped after a pause
-- or an outage, else the last `window` seconds. Always one row, so the reader learns the
-- clock even when the window is empty.
SELECT n.now, f.pull_request_id, f.version, f.created_at
FROM (SELECT now() AS now) n
LEFT JOIN change_feed f
  ON f.created_at >= COALESCE(%(since)s::timestamptz,
                              n.now - make_interval(secs => %(window)s::float8));

-- name: feed_payloads
-- With the PR's repository id (the /flutter socket's repo_id).
SELECT f.pull_request_id, f.version, f.repository, f.created_at, f.payload::text AS payload,
       p.repository_id
FROM change_feed f
JOIN unnest(%(pr_ids)s::bigint[], %(versions)s::bigint[]) AS k (pull_request_id, version)
  ON f.pull_request_id = k.pull_request_id AND f.version = k.version
LEFT JOIN pull_requests p ON p.id = f.pull_request_id;

-- name: feed_listen
LISTEN flowlens_feed;
