"""Run KIE Gateway: ``python main_render.py`` (Render's start command)."""

from app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
