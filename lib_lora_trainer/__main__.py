import sys

from lib_lora_trainer.cli import main

sys.exit(main())
