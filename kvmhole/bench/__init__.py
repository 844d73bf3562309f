"""kvmhole bench: the seed's experiment side by side, one section per question."""
