"""`python -m handlers …` is `menotime-bot …` (handy where the console script is not on PATH)."""

from handlers.cli import main

main()
