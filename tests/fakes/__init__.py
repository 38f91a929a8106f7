"""Local fakes of the network edge (Gemini, GitHub API) that real clients talk to."""

from tests.fakes.fake_gemini import FakeGemini, GeminiCall, Reply
from tests.fakes.fake_github import FakeGitHub, GitHubRequest, github_file
from tests.fakes.server import serve

__all__ = [
    "FakeGemini",
    "FakeGitHub",
    "GeminiCall",
    "GitHubRequest",
    "Reply",
    "github_file",
    "serve",
]
