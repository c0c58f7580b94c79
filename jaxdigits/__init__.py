"""jaxdigits: JAX reproductions of two PyTorch MNIST studies."""
