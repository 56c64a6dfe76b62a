"""Libraries the services (services/*) import: nothing here runs on its own."""
