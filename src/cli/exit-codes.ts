/** The command line's exit codes: 0 done, 1 the run found a problem (e.g. a broken ledger), 2 bad input or configuration. */
export const EXIT_OK = 0;
export const EXIT_PROBLEM = 1;
export const EXIT_USAGE = 2;
