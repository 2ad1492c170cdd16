"""The stage runner: a method's stages in order under Lightning, each stage's checkpoint
handed explicitly to the next (``pipeline``). Which stages a method has, and what each
trains, is the method's business (``ornet.methods``).
"""
