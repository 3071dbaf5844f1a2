"""The data layer: the dataset registry, downloads, the BEIR loader and PeerQA.

Nothing here imports from retrieval, evaluation or reporting: data flows up from here.
"""
