"""Active labelling: selectors that ask for labels where they pay (LabOR, RIPU, entropy, random), the label
store that keeps the answers, the simulated annotator, and training rounds that use them."""
