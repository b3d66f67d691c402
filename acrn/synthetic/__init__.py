"""Synthetic mini-AVA (see acrn.synthetic.mirror)."""
