"""Evidence models arrive with the reports issue; the app exists so the layout is fixed."""
