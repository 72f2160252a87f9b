# make train: create .venv if needed, install, train the MLP on FashionMNIST (ARGS adds flags).
# make test:  create .venv if needed, install, run the whole test suite.
# make test-oldest: the suite in .venv-oldest, on the lowest version requirements.txt admits of
#   every runtime dependency (torch 2.6 with torchvision 0.21...): the bounds are versions it
#   has passed on. Not part of CI (a second install of torch, about 3 GB).
# make mutation: mutation testing of utils/ and trainer.py with mutmut: about 4,500 mutants at
#   0.1-0.2 a second on 2 cores, so hours; MUTANTS='utils.loop.meter.*' runs the mutants it names.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
MUTANTS ?=

OLDEST := .venv-oldest

.PHONY: train test test-oldest lint format mutation

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python trainer_vanilla.py --model_type Vanilla --data_type FashionMNIST \
		--output_dir ./Results/Vanilla/ --data_dir ./Dataset $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	sed -E 's/>=([^,]+),.*/==\1/' requirements.txt > $(OLDEST)/lowest.txt
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -c $(OLDEST)/lowest.txt -r requirements-dev.txt
	$(OLDEST)/bin/python -m pip list | grep -iE '^(torch|torchvision|tensorboard|numpy|pillow|matplotlib|tqdm) '
	$(OLDEST)/bin/python -m pytest -n auto

# The mutated copy lives in mutants/, so the real data is named from here.
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut==3.8.1
	TEMPLATE_DATA_DIR=$${TEMPLATE_DATA_DIR:-$(CURDIR)/../shared/data} $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/mutmut results

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
