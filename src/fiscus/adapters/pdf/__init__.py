"""Turning a document view model into PDF bytes with Typst, without a browser or the network."""
