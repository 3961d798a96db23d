"""The call log: utterances and gaps, their search index, and the store interface."""
