// Package decide says whether a build patches a release or builds in full,
// and why. It holds what a release records (its labels, the Identity they
// spell, its file list in the config), reads a candidate's image config
// within bounds (it comes from any registry), and applies the rule: the
// first candidate of this build's platform, base, dependency stage and APP
// spec, whose file list is usable and whose change is not too big, is
// patched. It is pure: it is handed configs, file lists and a way to
// resolve candidates, and does no I/O of its own, so every rule is tested
// without a builder.
package decide
