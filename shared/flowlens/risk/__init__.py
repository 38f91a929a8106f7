"""The built-in risk read: a just-in-time defect model over change metrics and kept history.

`features` computes what the model reads from a change and the history; `history` keeps that
history incrementally (PostgreSQL in the product, memory for `flowlens risk-eval`); `model`
turns features into a probability, a level, a confidence and the top drivers, with the
coefficients fitted offline (`scripts/fit_risk_model.py`) and committed as `coefficients.json`.
docs/RISK_MODEL.md explains the method.
"""
