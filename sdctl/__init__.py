"""sdctl: deploy and operate an asynchronous Stable Diffusion image service on AWS."""

__version__ = "0.1.0"
