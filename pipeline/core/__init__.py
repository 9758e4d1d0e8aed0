"""What every package shares, framework-free (imports neither Jittor nor PyTorch).

config (TOML -> frozen dataclasses), artifacts (manifests, the one staged-folder writer, locks),
errors, cli (the `landscape` group and shared options), classes, imageio (one reader per
format), inputs (`--data/--split` or explicit paths, pairing json). `evaluation` and
`submission` import this package and nothing else of `pipeline`.
"""
