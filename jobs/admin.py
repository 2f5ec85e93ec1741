"""Django admin registrations (the full admin comes with the operations issue)."""
