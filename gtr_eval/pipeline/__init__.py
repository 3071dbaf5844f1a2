"""Where results are made: `run`, `rerank`, `fuse` and `import` hand their pairs to one pipeline
(`pairs`), which serves a stored result only for the inputs that made it; `plan` estimates a run."""
