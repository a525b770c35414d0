"""Figures and widgets: the data, training curves, weights and activations, errors on the
test set, the playground and the Train panel."""
