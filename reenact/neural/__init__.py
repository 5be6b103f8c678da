"""The learned machinery of the thesis: networks, losses, data, training (docs/neural.md).

The served default is the geometric reenactor (:mod:`reenact.reenactor`); a trained reenactor
is served through :mod:`reenact.reenactors.neural`, a trained regression mesh predictor through
:func:`reenact.mesh_predictor.build_regressed`. Every pretrained backbone loads from a local file
named in a config; nothing is ever downloaded.
"""
