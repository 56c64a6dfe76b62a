"""Offline tools: the catalogue load, model training and evaluation (`atelier catalog|models|eval`)."""
