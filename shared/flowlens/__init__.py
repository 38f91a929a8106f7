"""FlowLens: live, AI-annotated pull-request pipeline state from GitHub webhooks."""

__version__ = "0.1.0"
