"""Incentives domain services: async module functions, session first, keyword-only after."""
