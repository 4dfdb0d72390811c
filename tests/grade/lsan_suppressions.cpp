// CLN (under GiNaC) allocates its printer globals once in a static initialiser (cl_prin_globals_init_helper)
// and never frees them: a one-time library allocation, not a leak of ours. libcln is built without frame
// pointers, so LeakSanitizer's fast unwinder only sees the module, not the function: suppress by module.
#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __lsan_default_suppressions() { return "leak:libcln.so\n"; }
#endif
