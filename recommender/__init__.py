"""Ranks: hybrid retrieval, fusion, filters, explanations, and the service object the API and CLI use."""
