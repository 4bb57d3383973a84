"""One router per capability: search, records, feedback, ops."""
