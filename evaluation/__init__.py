"""PyTorch side: the four A-board terms, the score, the report. Never imports jittor."""
