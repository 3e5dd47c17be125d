"""Interactive demo page: `python run_demo.py` (after `make demo`: serves the model it trained; see --help)."""

from lavis_ib.app import main

if __name__ == "__main__":
    main()
