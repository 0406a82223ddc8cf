"""mlaface training: data, losses, trainer and evaluation. Imports `backend`; `backend` never imports this."""
