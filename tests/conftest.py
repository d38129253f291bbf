import sys
from pathlib import Path

# methods_table.py and reference.py sit beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
