"""External dependencies of netpoll: the Debian system copy when installed, else a pinned download.

Every dependency goes through one repository rule, `system_or_http_repository`. It looks for the
Debian package's files (`system_probe`); when they are there it lays out a repository over them with
an overlay BUILD file from `//bazel/overlays` that keeps the upstream target labels, so that
`@com_google_absl//absl/status:statusor` means the same thing whichever copy is used. Otherwise it
downloads the pinned, checksummed upstream archive and uses that archive's own BUILD files.

BUILD files outside `bazel/` never name a path of the system: only this file and the overlays do.
"""

def _symlink_children(ctx, source, dest_prefix):
    for child in ctx.path(source).readdir():
        ctx.symlink(child, dest_prefix + child.basename)

def _pkg_config_bzl(ctx, modules):
    """Writes //:pkg_config.bzl with PKG_CONFIG_LIBS = {module: [link options]}."""
    lines = ["PKG_CONFIG_LIBS = {"]
    for module in modules:
        result = ctx.execute(["pkg-config", "--libs", module])
        if result.return_code != 0:
            fail("pkg-config --libs %s failed (is pkg-config installed? ./bazelw installs it): %s" %
                 (module, result.stderr))
        lines.append("    %r: %r," % (module, result.stdout.strip().split(" ")))
    lines.append("}")
    ctx.file("pkg_config.bzl", "\n".join(lines) + "\n")

def _system_or_http_repository_impl(ctx):
    probe = ctx.attr.system_probe
    if probe and ctx.path(probe).exists:
        root = ctx.attr.system_root or probe
        if ctx.attr.system_layout == "children":
            _symlink_children(ctx, root, "")
        elif ctx.attr.system_layout == "copy":
            result = ctx.execute(["cp", "-R", "--no-preserve=mode", root + "/.", "."])
            if result.return_code != 0:
                fail("copying %s failed: %s" % (root, result.stderr))
        elif ctx.attr.system_layout == "include":
            ctx.symlink(root, "include/" + ctx.path(root).basename)
        else:
            fail("unknown system_layout " + ctx.attr.system_layout)
        for path, edits in ctx.attr.system_file_edits.items():
            text = ctx.read(path)
            for edit in edits:
                old, new = edit.split("=>")
                if old not in text:
                    fail("%s: the edit expects %r, which is not there (new Debian version?)" % (path, old))
                text = text.replace(old, new)
            ctx.file(path, text, legacy_utf8 = False)
        if ctx.attr.pkg_config_modules:
            _pkg_config_bzl(ctx, ctx.attr.pkg_config_modules)
        for label, path in ctx.attr.system_build_files.items():
            ctx.symlink(label, path)
        if not ctx.path("WORKSPACE").exists:
            ctx.file("WORKSPACE", "workspace(name = %r)\n" % ctx.name)
        return
    if not ctx.attr.urls:
        fail("%s: no system copy at %s and no download to fall back to" % (ctx.name, probe))
    ctx.download_and_extract(
        url = ctx.attr.urls,
        sha256 = ctx.attr.sha256,
        stripPrefix = ctx.attr.strip_prefix,
    )

system_or_http_repository = repository_rule(
    implementation = _system_or_http_repository_impl,
    local = True,
    attrs = {
        "system_probe": attr.string(doc = "A path that exists when the Debian package is installed."),
        "system_root": attr.string(doc = "The directory to lay out (default: system_probe)."),
        "system_layout": attr.string(
            default = "children",
            doc = "children: symlink each entry of system_root; copy: copy the tree (to edit it); " +
                  "include: symlink system_root as include/<basename>.",
        ),
        "system_build_files": attr.label_keyed_string_dict(
            doc = "Overlay BUILD file -> path in the repository, for the system copy.",
        ),
        "system_file_edits": attr.string_list_dict(doc = "path -> ['old=>new', ...] text edits on a copied tree."),
        "pkg_config_modules": attr.string_list(doc = "Modules whose link line goes into //:pkg_config.bzl."),
        "urls": attr.string_list(),
        "sha256": attr.string(),
        "strip_prefix": attr.string(),
    },
)

# rules_cc 0.0.4 from Debian loads `use_cpp_toolchain`, which Bazel 4.2.3 lacks.
_RULES_CC_EDITS = [
    ", \"use_cpp_toolchain\")=>)",
    "use_cpp_toolchain()=>[\"@bazel_tools//tools/cpp:toolchain_type\"]",
]

def _absl_build_files():
    packages = ["base", "cleanup", "container", "flags", "functional", "hash", "memory", "numeric",
                "status", "strings", "synchronization", "time", "types", "random", "debugging"]
    files = {"//bazel/overlays:absl.BUILD": "BUILD.bazel"}
    for package in packages:
        files["//bazel/overlays:absl_%s.BUILD" % package] = "absl/%s/BUILD.bazel" % package
    return files

def netpoll_dependencies():
    """Declares every external repository netpoll needs. Call from WORKSPACE."""
    system_or_http_repository(
        name = "rules_cc",
        system_probe = "/usr/share/bazel/rules/cc",
        system_layout = "copy",
        system_file_edits = {
            "cc/private/rules_impl/compiler_flag.bzl": _RULES_CC_EDITS,
            "cc/private/rules_impl/cc_flags_supplier.bzl": _RULES_CC_EDITS,
        },
        urls = ["https://github.com/bazelbuild/rules_cc/releases/download/0.0.9/rules_cc-0.0.9.tar.gz"],
        sha256 = "2037875b9a4456dce4a79d112a8ae885bbc4aad968e6587dca6e64f3a0900cdf",
        strip_prefix = "rules_cc-0.0.9",
    )
    system_or_http_repository(
        name = "rules_java",
        system_probe = "/usr/share/bazel/rules/java",
        urls = ["https://github.com/bazelbuild/rules_java/releases/download/5.0.0/rules_java-5.0.0.tar.gz"],
        sha256 = "8c376f1e4ab7d7d8b1880e4ef8fc170862be91b7c683af97ca2768df546bb073",
    )
    system_or_http_repository(
        name = "platforms",
        system_probe = "/usr/share/bazel/platforms",
        urls = ["https://github.com/bazelbuild/platforms/releases/download/0.0.6/platforms-0.0.6.tar.gz"],
        sha256 = "5308fc1d8865406a49427ba24a9ab53087f17f5266a7aabbfc28823f3916e1ca",
    )
    system_or_http_repository(
        name = "com_google_absl",
        system_probe = "/usr/include/absl/base/config.h",
        system_root = "/usr/include/absl",
        system_layout = "include",
        system_build_files = _absl_build_files(),
        pkg_config_modules = [
            "absl_base",
            "absl_status",
            "absl_statusor",
            "absl_strings",
            "absl_str_format",
            "absl_time",
            "absl_synchronization",
            "absl_raw_hash_set",
            "absl_hash",
            "absl_flags",
            "absl_flags_parse",
            "absl_random_random",
            "absl_stacktrace",
            "absl_symbolize",
            "absl_failure_signal_handler",
        ],
        urls = ["https://github.com/abseil/abseil-cpp/archive/refs/tags/20220623.1.tar.gz"],
        sha256 = "91ac87d30cc6d79f9ab974c51874a704de9c2647c40f6932597329a282217ba8",
        strip_prefix = "abseil-cpp-20220623.1",
    )
    system_or_http_repository(
        name = "com_google_googletest",
        system_probe = "/usr/src/googletest/googletest/src/gtest.cc",
        system_root = "/usr/src/googletest",
        system_build_files = {"//bazel/overlays:googletest.BUILD": "BUILD.bazel"},
        urls = ["https://github.com/google/googletest/archive/refs/tags/release-1.12.1.tar.gz"],
        sha256 = "81964fe578e9bd7c94dfdb09c8e4d6e6759e19967e397dbea48d1c10e45d0df2",
        strip_prefix = "googletest-release-1.12.1",
    )
    system_or_http_repository(
        name = "com_github_google_benchmark",
        system_probe = "/usr/include/benchmark/benchmark.h",
        system_root = "/usr/include/benchmark",
        system_layout = "include",
        system_build_files = {"//bazel/overlays:benchmark.BUILD": "BUILD.bazel"},
        urls = ["https://github.com/google/benchmark/archive/refs/tags/v1.7.1.tar.gz"],
        sha256 = "6430e4092653380d9dc4ccb45a1e2dc9259d581f4866dc0759713126056bc1d7",
        strip_prefix = "benchmark-1.7.1",
    )
    # Bazel wants this for every test rule and would download it; coverage is not offered offline.
    native.local_repository(
        name = "remote_coverage_tools",
        path = "bazel/coverage_tools",
    )
