"""caselink: which old records are related to this one? Cases, problem orders and SOP sections."""

__version__ = "0.1.0"
