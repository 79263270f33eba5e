from matcher.cli import app

app()
