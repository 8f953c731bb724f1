"""The human-study page: real people answer the eval's behaviour questions from the same explanations the judges
read, so the simulated human can be checked against people (docs/study.md)."""
