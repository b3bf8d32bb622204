#!/usr/bin/env bash
# Offline build and test of the Android demo, without Gradle or the Android Gradle Plugin (both live on
# Google's Maven, unreachable in CI). See ../shared/design/ANDROID.md for what is and is not possible here.
#
#   offline_build.sh setup                       install Debian tools, extract android.jar and dx
#   offline_build.sh test [GOLDEN_DIR] [CLASS..] compile core and run its JUnit 4 tests (golden files optional)
#   offline_build.sh apk ASSETS_DIR              compile core + app against android.jar, LiteRT and ExecuTorch stubs,
#                                                assemble, align, sign and verify a smoke APK
#
# Environment: XFORMER_ANDROID_BUILD (output dir, default android_demo/build/offline),
#              XFORMER_ANDROID_SHARED (the shared .debs, default ../shared/android next to the repository).
set -euo pipefail

DEMO=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(cd "$DEMO/.." && pwd)
SHARED=${XFORMER_ANDROID_SHARED:-$REPO/../shared/android}
BUILD=${XFORMER_ANDROID_BUILD:-$DEMO/build/offline}
SDK=$DEMO/build/sdk
ANDROID_JAR=$SDK/usr/share/java/com.android.android-23.jar
DX_JAR=$SDK/usr/share/java/com.android.dx-10.0.0.jar
JUNIT=/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
APT_PACKAGES=(aapt zipalign apksigner junit4)
MIN_SDK=23
JAVAC=(javac -encoding UTF-8 -Xlint:all,-options -Werror)

die() {
    echo "offline_build: $*" >&2
    exit 1
}

java_sources() {
    find "$@" -name '*.java' | sort
}

setup() {
    command -v javac >/dev/null || die "javac not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
    local missing=()
    for tool in aapt2 zipalign apksigner; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ -f /usr/share/java/junit4.jar ] || missing+=(junit4)
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root: apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
    fi
    if [ ! -f "$ANDROID_JAR" ] || [ ! -f "$DX_JAR" ]; then
        [ -f "$SHARED/SHA256SUMS" ] || die "no $SHARED/SHA256SUMS: set XFORMER_ANDROID_SHARED to the folder with the android .debs"
        (cd "$SHARED" && sha256sum --quiet -c SHA256SUMS) || die "checksums of the .debs in $SHARED do not match"
        mkdir -p "$SDK"
        for deb in "$SHARED"/*.deb; do
            dpkg-deb -x "$deb" "$SDK"
        done
    fi
    [ -f "$ANDROID_JAR" ] && [ -f "$DX_JAR" ] || die "android.jar or dx missing after extracting the .debs in $SHARED"
}

run_tests() {
    local golden=${1:-}
    shift || true
    local out=$BUILD/core
    rm -rf "$out"
    mkdir -p "$out/main" "$out/test"
    "${JAVAC[@]}" --release 8 -d "$out/main" $(java_sources "$DEMO/core/src/main")
    "${JAVAC[@]}" --release 8 -cp "$out/main:$JUNIT" -d "$out/test" $(java_sources "$DEMO/core/src/test")
    local classes=("$@")
    if [ ${#classes[@]} -eq 0 ]; then
        mapfile -t classes < <(cd "$out/test" && find . -name '*Test.class' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
    fi
    java -cp "$out/main:$out/test:$JUNIT" ${golden:+-Dxformer.golden.dir=$golden} \
        org.junit.runner.JUnitCore "${classes[@]}"
}

build_apk() {
    local assets=${1:?usage: offline_build.sh apk ASSETS_DIR}
    [ -d "$assets" ] || die "no assets folder $assets"
    local out=$BUILD/apk
    rm -rf "$out"
    mkdir -p "$out/gen" "$out/stubs" "$out/classes"
    # AGP 8 manifests carry no package= (Gradle's namespace sets it); aapt2 needs one.
    sed 's|<manifest |<manifest package="org.xformer.demo" |' "$DEMO/app/src/main/AndroidManifest.xml" \
        > "$out/AndroidManifest.xml"
    aapt2 compile --dir "$DEMO/app/src/main/res" -o "$out/res.zip"
    # Models stay stored so the app can memory-map them. Debian's aapt2 2.19 deflates real models with
    # `-0 tflite` (a tiny stand-in stayed stored only because deflating did not pay); `-0 .tflite` works.
    aapt2 link -I "$ANDROID_JAR" --manifest "$out/AndroidManifest.xml" --min-sdk-version $MIN_SDK \
        --target-sdk-version 23 -A "$assets" -0 .tflite -0 .pte --java "$out/gen" -o "$out/app.unaligned.apk" \
        "$out/res.zip"
    # The LiteRT and ExecuTorch stubs are on the classpath only: the smoke APK compiles and dexes against them but
    # contains neither runtime, so it cannot run a model on a device.
    "${JAVAC[@]}" -source 8 -target 8 -bootclasspath "$ANDROID_JAR" -d "$out/stubs" \
        $(java_sources "$DEMO/scripts/litert-stubs" "$DEMO/scripts/executorch-stubs")
    "${JAVAC[@]}" -source 8 -target 8 -bootclasspath "$ANDROID_JAR" -cp "$out/stubs" -d "$out/classes" \
        $(java_sources "$DEMO/core/src/main" "$DEMO/app/src/main/java" "$out/gen")
    java -cp "$DX_JAR" com.android.dx.command.Main --dex --min-sdk-version=$MIN_SDK \
        --output="$out/classes.dex" "$out/classes"
    (cd "$out" && aapt add app.unaligned.apk classes.dex >/dev/null)
    zipalign -f -p 4 "$out/app.unaligned.apk" "$out/app.aligned.apk"
    keytool -genkeypair -keystore "$out/debug.keystore" -storepass android -keypass android \
        -alias androiddebugkey -keyalg RSA -keysize 2048 -validity 10000 \
        -dname "CN=Android Debug,O=Android,C=US" 2>/dev/null
    apksigner sign --ks "$out/debug.keystore" --ks-pass pass:android --out "$out/xformer-demo-smoke.apk" \
        "$out/app.aligned.apk"
    apksigner verify "$out/xformer-demo-smoke.apk"
    zipalign -c -p 4 "$out/xformer-demo-smoke.apk"
    echo "smoke APK: $out/xformer-demo-smoke.apk (signed, verified, aligned)"
}

case "${1:-}" in
    setup) setup ;;
    test) shift; setup; run_tests "$@" ;;
    apk) shift; setup; build_apk "$@" ;;
    *) die "usage: offline_build.sh setup | test [GOLDEN_DIR] [TEST_CLASS...] | apk ASSETS_DIR" ;;
esac
