"""Neural models: plain ``nn.Module`` networks, trained by one shared estimator and loop."""
