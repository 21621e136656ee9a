"""cutover: infrastructure as code and big-bang migration orchestration for the SAMU platform."""

__version__ = "0.1.0"
