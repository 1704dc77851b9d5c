"""HTTP routes: one router per resource, each route a few lines over a service."""
