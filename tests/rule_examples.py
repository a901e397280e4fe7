"""A Transpose -> Transpose fold written as a RulePass, as a plugin would write it (not a built-in;
a plugin decorates it with @register_pass or names it in an entry point; the tests register it)."""

from optimizer.rules import MatchResult, RulePass


class FoldDoubleTranspose(RulePass):
    name = "fold-double-transpose"
    summary = "Fold Transpose -> Transpose into one Transpose (or nothing)"
    addresses = ("Transpose",)

    def pattern(self, op, x):
        return op.Transpose(op.Transpose(x, _outputs=["inner"]), _outputs=["outer"])

    def perms(self, x, inner, outer):
        """The perms of the two Transposes (no perm: reversed axes), or None if the rank is unknown."""
        given = [value.producer().attributes.get_ints("perm", None) for value in (inner, outer)]
        dims = self.ctx.dims_of(x, self.model)
        rank = len(dims) if dims is not None else next((len(p) for p in given if p is not None), None)
        return None if rank is None else [list(range(rank))[::-1] if p is None else list(p) for p in given]

    def check(self, context, x, inner, outer):
        if self.perms(x, inner, outer) is None:
            return MatchResult().fail("the rank of x is unknown and neither Transpose has a perm")
        return MatchResult()

    def rewrite(self, op, x, inner, outer):
        first, second = self.perms(x, inner, outer)
        perm = [first[axis] for axis in second]  # output axis i is axis first[second[i]] of x
        return x if perm == sorted(perm) else op.Transpose(x, perm=perm)
