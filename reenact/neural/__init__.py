"""The learned machinery of the thesis: networks, losses, data, training (docs/neural.md).

Nothing here is used by the served models yet; the product's reenactor is the geometric one
(:mod:`reenact.reenactor`). Every pretrained backbone loads from a local file named in a config;
nothing is ever downloaded.
"""
