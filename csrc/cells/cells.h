// The registry of cells: every cell's file. No include guard: kernels.cpp
// includes it once per instruction set with RNN_FAST_CELL_BODIES defined
// (the bodies), everything else once (the descriptions; see cell.h).
#include "cells/rnn.h"
#include "cells/lstm.h"
#include "cells/gru.h"
