"""kvmhole bench: the 2020 patch's experiment side by side, one section per question."""
