"""sft-vs-rlvr: a fair SFT-versus-GRPO comparison on GSM8K, from launch to report.

One module per concern; see docs/ARCHITECTURE.md for the map.
"""

__version__ = "0.1.0"
