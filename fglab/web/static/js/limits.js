/* Timings and limits every page module reads (milliseconds, counts). */

export const SCRIPT_TIMEOUT_MS = 10000;

export const NOTES_INTERVAL_MS = 500;

export const LOG_POLL_MS = 1000;

export const LOG_MAX_CHUNKS = 20000;

export const TABLE_POLL_MS = 2000;

export const EXPERIMENT_POLL_MS = 2000;

export const CHARTS_POLL_MS = 10000;

export const PAGE_REFRESH_MS = 5000;

export const SEARCH_DELAY_MS = 300;

export const BULK_PARALLEL = 4;

export const COMPARE_MAX = 50;
