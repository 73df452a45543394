"""The chaos stage: experiments as data, the local fault feed, FIS on AWS (docs/testing.md)."""
