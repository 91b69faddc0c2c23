"""convscope: ConvNets for microscopy."""
