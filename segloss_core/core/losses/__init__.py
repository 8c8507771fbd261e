"""Loss families of the Segmentation Loss Odyssey taxonomy (Ma, 2020), plus Lovász and Liu et al."""
