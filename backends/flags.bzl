"""The --//backends:backend build setting (a Starlark string flag, no skylib needed)."""

def _string_flag_impl(ctx):
    allowed = ctx.attr.values
    value = ctx.build_setting_value
    if allowed and value not in allowed:
        fail("--%s=%s is not a backend; choose one of: %s" % (ctx.label, value, ", ".join(allowed)))
    return []

string_flag = rule(
    implementation = _string_flag_impl,
    build_setting = config.string(flag = True),
    attrs = {"values": attr.string_list()},
)
