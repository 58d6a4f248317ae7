/* vstpipe's OpenFX plugin: one OpenFX image effect per vstpipe effect, each a bridge to
 * `vstpipe serve` (see link.h for the server's life, plugins/README.md for the protocol).
 *
 * What the bundle offers comes from Contents/Resources/effects.json, the server's own answers
 * to `hello` and `describe` written by `vstpipe ofx bundle`, so a host scanning its plugins does
 * not start Python; the server starts with the first instance that needs it. The actions map
 * onto requests: create instance -> `create` (lazily, once the Source's size and depth are
 * known), parameter values -> `set`, frames needed -> `frames_needed`, begin/end sequence ->
 * `begin`/`end`, render -> `render` with the Source frames, destroy -> `destroy`. Every failure
 * becomes the action's failure status and one line through the host's message suite. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "link.h"
#include "ofx_api.h"

#define MAX_EFFECTS 32
#define MAX_PARAMS 64
#define MAX_FRAMES 129     /* a render's Source frames: 64 back, 64 ahead and its own */
#define ERR 1024
#define RENDER_SECONDS 600.0
#define REQUEST_SECONDS 60.0

/* -- the host ------------------------------------------------------------------------------- */

static OfxHost *g_host;
static const OfxPropertySuiteV1 *P;
static const OfxImageEffectSuiteV1 *E;
static const OfxParameterSuiteV1 *A;
static const OfxMessageSuiteV2 *M;
static int g_message_version;

/* -- what the bundle offers ----------------------------------------------------------------- */

typedef struct Effect {
    OfxPlugin plugin;
    const JsonValue *entry; /* {"effect": identifier, "contexts": {context: descriptor}} */
} Effect;

static pthread_mutex_t g_state = PTHREAD_MUTEX_INITIALIZER;
static int g_catalog_read;  /* 0: not yet, 1: read, -1: failed */
static JsonDoc g_catalog;
static Effect g_effects[MAX_EFFECTS];
static int g_count;
static int g_loads;
static Link *g_link;

static void say(const char *line) { fprintf(stderr, "vstpipe.ofx: %s\n", line); }

/* Contents/Resources/effects.json of the bundle this binary is in. */
static int catalog_path(char *out, size_t outlen) {
    Dl_info info;
    if (!dladdr((void *)&catalog_path, &info) || !info.dli_fname) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s", info.dli_fname);
    for (int up = 0; up < 2; up++) { /* .../Contents/<platform>/vstpipe.ofx -> .../Contents */
        char *slash = strrchr(path, '/');
        if (!slash) return -1;
        *slash = '\0';
    }
    snprintf(out, outlen, "%s/Resources/effects.json", path);
    return 0;
}

static OfxStatus entry(int index, const char *action, const void *handle,
                       OfxPropertySetHandle in, OfxPropertySetHandle out);
static void set_host(OfxHost *host) { g_host = host; }

#define TRAMPOLINE(n)                                                                          \
    static OfxStatus entry_##n(const char *a, const void *h, OfxPropertySetHandle i,           \
                               OfxPropertySetHandle o) { return entry(n, a, h, i, o); }
TRAMPOLINE(0) TRAMPOLINE(1) TRAMPOLINE(2) TRAMPOLINE(3) TRAMPOLINE(4) TRAMPOLINE(5)
TRAMPOLINE(6) TRAMPOLINE(7) TRAMPOLINE(8) TRAMPOLINE(9) TRAMPOLINE(10) TRAMPOLINE(11)
TRAMPOLINE(12) TRAMPOLINE(13) TRAMPOLINE(14) TRAMPOLINE(15) TRAMPOLINE(16) TRAMPOLINE(17)
TRAMPOLINE(18) TRAMPOLINE(19) TRAMPOLINE(20) TRAMPOLINE(21) TRAMPOLINE(22) TRAMPOLINE(23)
TRAMPOLINE(24) TRAMPOLINE(25) TRAMPOLINE(26) TRAMPOLINE(27) TRAMPOLINE(28) TRAMPOLINE(29)
TRAMPOLINE(30) TRAMPOLINE(31)
static OfxPluginEntryPoint *const g_entries[MAX_EFFECTS] = {
    entry_0, entry_1, entry_2, entry_3, entry_4, entry_5, entry_6, entry_7, entry_8, entry_9,
    entry_10, entry_11, entry_12, entry_13, entry_14, entry_15, entry_16, entry_17, entry_18,
    entry_19, entry_20, entry_21, entry_22, entry_23, entry_24, entry_25, entry_26, entry_27,
    entry_28, entry_29, entry_30, entry_31};

static void read_catalog(void) {
    if (g_catalog_read) return;
    g_catalog_read = -1;
    char path[4200], err[256], line[4608];
    if (catalog_path(path, sizeof path)) {
        say("cannot find the bundle's folder; rebuild it with `vstpipe ofx bundle`");
        return;
    }
    FILE *file = fopen(path, "rb");
    if (!file) {
        snprintf(line, sizeof line, "cannot read %s; rebuild the bundle with `vstpipe ofx "
                 "bundle`", path);
        say(line);
        return;
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = size > 0 ? malloc((size_t)size) : NULL;
    size_t got = text ? fread(text, 1, (size_t)size, file) : 0;
    fclose(file);
    if (!text || got != (size_t)size || json_parse(text, got, &g_catalog, err, sizeof err)) {
        snprintf(line, sizeof line, "%s is not the JSON `vstpipe ofx bundle` writes (%s)", path,
                 text ? err : "empty");
        say(line);
        free(text);
        return;
    }
    free(text);
    const JsonValue *listed = json_get(g_catalog.root, "effects");
    for (size_t i = 0; listed && listed->kind == JSON_ARRAY && i < listed->count; i++) {
        const JsonValue *item = json_at(listed, i);
        const char *id = json_str(json_get(item, "effect"), NULL);
        const JsonValue *contexts = json_get(item, "contexts");
        if (!id || !contexts || contexts->kind != JSON_OBJECT || !contexts->count) continue;
        if (g_count == MAX_EFFECTS) {
            say("more effects than one bundle offers (32); the rest are left out");
            break;
        }
        const JsonValue *first = &contexts->items[0];
        const JsonValue *version = json_get(first, "version");
        Effect *e = &g_effects[g_count];
        e->entry = item;
        e->plugin.pluginApi = kOfxImageEffectPluginApi;
        e->plugin.apiVersion = 1;
        e->plugin.pluginIdentifier = id;
        e->plugin.pluginVersionMajor = (unsigned)json_num(json_at(version, 0), 1);
        e->plugin.pluginVersionMinor = (unsigned)json_num(json_at(version, 1), 0);
        e->plugin.setHost = set_host;
        e->plugin.mainEntry = g_entries[g_count];
        g_count++;
    }
    g_catalog_read = 1;
}

OFX_EXPORT int OfxGetNumberOfPlugins(void) {
    pthread_mutex_lock(&g_state);
    read_catalog();
    int count = g_count;
    pthread_mutex_unlock(&g_state);
    return count;
}

OFX_EXPORT OfxPlugin *OfxGetPlugin(int nth) {
    pthread_mutex_lock(&g_state);
    read_catalog();
    OfxPlugin *plugin = (nth >= 0 && nth < g_count) ? &g_effects[nth].plugin : NULL;
    pthread_mutex_unlock(&g_state);
    return plugin;
}

/* The link, made on first use from the catalog's server command (or VSTPIPE_OFX_SERVER). */
static Link *the_link(char *err, size_t errlen) {
    pthread_mutex_lock(&g_state);
    if (!g_link) {
        const char *argv[64];
        char *words = NULL;
        size_t n = 0;
        const char *custom = getenv("VSTPIPE_OFX_SERVER");
        if (custom && *custom) {  /* a command line split at blanks: no quoting */
            words = strdup(custom);
            for (char *save = NULL, *w = words ? strtok_r(words, " \t", &save) : NULL;
                 w && n < 63; w = strtok_r(NULL, " \t", &save))
                argv[n++] = w;
        } else {
            const JsonValue *server = json_get(g_catalog.root, "server");
            for (size_t i = 0; server && i < server->count && n < 63; i++)
                argv[n++] = json_str(json_at(server, i), "");
        }
        argv[n] = NULL;
        const char *env[32];
        char settings[31][1024];
        size_t k = 0;
        const JsonValue *environment = json_get(g_catalog.root, "environment");
        for (size_t i = 0; environment && environment->kind == JSON_OBJECT &&
             i < environment->count && k < 31; i++, k++) {
            snprintf(settings[k], sizeof settings[k], "%s=%s", environment->keys[i],
                     json_str(&environment->items[i], ""));
            env[k] = settings[k];
        }
        env[k] = NULL;
        if (n) g_link = link_new(argv, env);
        free(words);
        if (!g_link)
            snprintf(err, errlen, "no command to start vstpipe serve (the bundle's effects.json "
                     "names none, VSTPIPE_OFX_SERVER is unset); rebuild it with `vstpipe ofx "
                     "bundle`");
    }
    Link *link = g_link;
    pthread_mutex_unlock(&g_state);
    return link;
}

/* -- small helpers -------------------------------------------------------------------------- */

static const char *depth_name(const char *ofx) {
    if (!ofx) return NULL;
    if (!strcmp(ofx, "OfxBitDepthByte")) return "byte";
    if (!strcmp(ofx, "OfxBitDepthShort")) return "short";
    if (!strcmp(ofx, "OfxBitDepthHalf")) return "half";
    if (!strcmp(ofx, "OfxBitDepthFloat")) return "float";
    return NULL;
}

static int sample_bytes(const char *depth) {
    return !strcmp(depth, "byte") ? 1 : !strcmp(depth, "float") ? 4 : 2;
}

static void ofx_context(const char *name, char *out, size_t outlen) {
    snprintf(out, outlen, "OfxImageEffectContext%c%s", name[0] - 32, name + 1);
}

static int our_context(const char *ofx, char *out, size_t outlen) {
    const char *prefix = "OfxImageEffectContext";
    if (!ofx || strncmp(ofx, prefix, strlen(prefix)) || !ofx[strlen(prefix)]) return -1;
    snprintf(out, outlen, "%s", ofx + strlen(prefix));
    if (out[0] >= 'A' && out[0] <= 'Z') out[0] += 32;
    return 0;
}

static const JsonValue *descriptor(int effect, const char *context) {
    return json_get(json_get(g_effects[effect].entry, "contexts"), context);
}

/* -- describe ------------------------------------------------------------------------------- */

static void set_strings(OfxPropertySetHandle props, const char *name, const JsonValue *list,
                        const char *(*map)(const char *, char *, size_t)) {
    if (!list || list->kind != JSON_ARRAY) return;
    for (size_t i = 0; i < list->count; i++) {
        char buf[128];
        const char *value = json_str(json_at(list, i), "");
        P->propSetString(props, name, (int)i, map ? map(value, buf, sizeof buf) : value);
    }
}

/* An int property from a descriptor's boolean (or `fallback` when it has none). */
static void set_flag(OfxPropertySetHandle props, const char *name, const JsonValue *from,
                     const char *key, int fallback) {
    P->propSetInt(props, name, 0, json_bool(json_get(from, key), fallback));
}

static const char *map_context(const char *value, char *buf, size_t len) {
    ofx_context(value, buf, len);
    return buf;
}

static const char *map_depth(const char *value, char *buf, size_t len) {
    snprintf(buf, len, "OfxBitDepth%c%s", value[0] - 32, value + 1);
    return buf;
}

static const char *map_components(const char *value, char *buf, size_t len) {
    snprintf(buf, len, "OfxImageComponent%s", value);
    return buf;
}

static OfxStatus describe(int index, OfxImageEffectHandle handle) {
    const JsonValue *contexts = json_get(g_effects[index].entry, "contexts");
    const JsonValue *d = &contexts->items[0];
    OfxPropertySetHandle props;
    if (E->getPropertySet(handle, &props)) return kOfxStatErrBadHandle;
    P->propSetString(props, kOfxPropLabel, 0, json_str(json_get(d, "label"), ""));
    P->propSetString(props, kOfxImageEffectPluginPropGrouping, 0,
                     json_str(json_get(d, "grouping"), "vstpipe"));
    P->propSetString(props, kOfxPropPluginDescription, 0,
                     json_str(json_get(d, "description"), ""));
    set_strings(props, kOfxImageEffectPropSupportedContexts, json_get(d, "contexts"), map_context);
    set_strings(props, kOfxImageEffectPropSupportedPixelDepths, json_get(d, "pixel_depths"),
                map_depth);
    set_flag(props, kOfxImageEffectPropSupportsTiles, d, "supports_tiles", 1);
    set_flag(props, kOfxImageEffectPropTemporalClipAccess, d, "temporal_clip_access", 0);
    P->propSetInt(props, kOfxImageEffectPropSupportsMultiResolution, 0, 0);
    P->propSetInt(props, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
    P->propSetInt(props, kOfxImageEffectPluginPropSingleInstance, 0, 0);
    P->propSetInt(props, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
    const char *safety = json_str(json_get(d, "render_thread_safety"), "instance_safe");
    P->propSetString(props, kOfxImageEffectPluginRenderThreadSafety, 0,
                     !strcmp(safety, "unsafe") ? kOfxImageEffectRenderUnsafe :
                     !strcmp(safety, "fully_safe") ? kOfxImageEffectRenderFullySafe :
                     kOfxImageEffectRenderInstanceSafe);
    const char *sequential = json_str(json_get(d, "sequential_render"), "never");
    P->propSetInt(props, kOfxImageEffectInstancePropSequentialRender, 0,
                  !strcmp(sequential, "always") ? 1 : !strcmp(sequential, "preferred") ? 2 : 0);
    char icon[256];
    snprintf(icon, sizeof icon, "%s.png", g_effects[index].plugin.pluginIdentifier);
    P->propSetString(props, kOfxPropIcon, 1, icon);
    return kOfxStatOK;
}

static void define_param(OfxParamSetHandle set, const JsonValue *p) {
    const char *type = json_str(json_get(p, "type"), "");
    const char *name = json_str(json_get(p, "name"), "");
    enum { DOUBLE, INTEGER, BOOLEAN, CHOICE, STRING } kind =
        !strcmp(type, "double") ? DOUBLE : !strcmp(type, "integer") ? INTEGER :
        !strcmp(type, "boolean") ? BOOLEAN : !strcmp(type, "choice") ? CHOICE : STRING;
    static const char *const ofx_types[] = {kOfxParamTypeDouble, kOfxParamTypeInteger,
                                            kOfxParamTypeBoolean, kOfxParamTypeChoice,
                                            kOfxParamTypeString};
    const char *ofx_type = ofx_types[kind];
    OfxPropertySetHandle props;
    if (A->paramDefine(set, ofx_type, name, &props)) return;
    P->propSetString(props, kOfxPropLabel, 0, json_str(json_get(p, "label"), name));
    P->propSetString(props, kOfxParamPropHint, 0, json_str(json_get(p, "hint"), ""));
    set_flag(props, kOfxParamPropAnimates, p, "animatable", 0);
    const JsonValue *def = json_get(p, "default");
    const JsonValue *lo = json_get(p, "min"), *hi = json_get(p, "max");
    if (kind == DOUBLE) {
        P->propSetDouble(props, kOfxParamPropDefault, 0, json_num(def, 0));
        if (lo) {
            P->propSetDouble(props, kOfxParamPropMin, 0, json_num(lo, 0));
            P->propSetDouble(props, kOfxParamPropDisplayMin, 0, json_num(lo, 0));
        }
        if (hi) {
            P->propSetDouble(props, kOfxParamPropMax, 0, json_num(hi, 0));
            P->propSetDouble(props, kOfxParamPropDisplayMax, 0, json_num(hi, 0));
        }
    } else if (kind == INTEGER) {
        P->propSetInt(props, kOfxParamPropDefault, 0, (int)json_num(def, 0));
        if (lo) {
            P->propSetInt(props, kOfxParamPropMin, 0, (int)json_num(lo, 0));
            P->propSetInt(props, kOfxParamPropDisplayMin, 0, (int)json_num(lo, 0));
        }
        if (hi) {
            P->propSetInt(props, kOfxParamPropMax, 0, (int)json_num(hi, 0));
            P->propSetInt(props, kOfxParamPropDisplayMax, 0, (int)json_num(hi, 0));
        }
    } else if (kind == BOOLEAN) {
        P->propSetInt(props, kOfxParamPropDefault, 0, json_bool(def, 0));
    } else if (kind == CHOICE) {
        const JsonValue *options = json_get(p, "options");
        int chosen = 0;
        for (size_t i = 0; options && i < options->count; i++) {
            const char *option = json_str(json_at(options, i), "");
            P->propSetString(props, kOfxParamPropChoiceOption, (int)i, option);
            if (!strcmp(option, json_str(def, ""))) chosen = (int)i;
        }
        P->propSetInt(props, kOfxParamPropDefault, 0, chosen);
    } else {
        P->propSetString(props, kOfxParamPropDefault, 0, json_str(def, ""));
        int path = !strcmp(type, "file_path");
        P->propSetString(props, kOfxParamPropStringMode, 0,
                         path ? kOfxParamStringIsFilePath : kOfxParamStringIsSingleLine);
        if (path) P->propSetInt(props, kOfxParamPropStringFilePathExists, 0, 1);
    }
}

static OfxStatus describe_in_context(int index, OfxImageEffectHandle handle,
                                     OfxPropertySetHandle in) {
    char *ofx = NULL, context[64];
    P->propGetString(in, kOfxImageEffectPropContext, 0, &ofx);
    if (our_context(ofx, context, sizeof context)) return kOfxStatErrMissingHostFeature;
    const JsonValue *d = descriptor(index, context);
    if (!d) return kOfxStatErrMissingHostFeature;
    const JsonValue *clips = json_get(d, "clips");
    for (size_t i = 0; clips && i < clips->count; i++) {
        const JsonValue *clip = json_at(clips, i);
        OfxPropertySetHandle props;
        if (E->clipDefine(handle, json_str(json_get(clip, "name"), ""), &props)) continue;
        set_strings(props, kOfxImageEffectPropSupportedComponents, json_get(d, "components"),
                    map_components);
        set_flag(props, kOfxImageEffectPropTemporalClipAccess, clip, "temporal_access", 0);
        set_flag(props, kOfxImageEffectPropSupportsTiles, clip, "supports_tiles", 1);
        set_flag(props, kOfxImageClipPropOptional, clip, "optional", 0);
    }
    OfxParamSetHandle set;
    if (E->getParamSet(handle, &set)) return kOfxStatErrBadHandle;
    const JsonValue *params = json_get(d, "params");
    for (size_t i = 0; params && i < params->count && i < MAX_PARAMS; i++)
        define_param(set, json_at(params, i));
    return kOfxStatOK;
}

/* -- instances ------------------------------------------------------------------------------ */

typedef struct Sent {
    double time;
    char uid[128];  /* the host's unique identifier of the image sent ("" : none given) */
} Sent;

typedef struct Instance {
    int effect;
    OfxImageEffectHandle handle;
    char context[32];
    const JsonValue *desc;
    OfxImageClipHandle source, output;
    OfxParamHandle params[MAX_PARAMS];
    int nparams;
    int temporal;         /* the effect reads Source frames at other times */
    unsigned generation;  /* the server the instance was created on (0: none) */
    double server_id;
    int x1, y1, width, height;  /* the Source's region of definition, pixels */
    char depth[8];
    char *last_set;       /* the last `set` request sent, to skip sending it again */
    Sent sent[MAX_FRAMES];  /* the Source frames the server holds for this instance */
    int nsent;
    int messages;         /* a persistent error message is shown */
} Instance;

static Instance *instance_of(OfxImageEffectHandle handle) {
    OfxPropertySetHandle props;
    void *data = NULL;
    if (E->getPropertySet(handle, &props) || P->propGetPointer(props, kOfxPropInstanceData, 0, &data))
        return NULL;
    return data;
}

static OfxStatus create_instance(int index, OfxImageEffectHandle handle) {
    Instance *inst = calloc(1, sizeof *inst);
    if (!inst) return kOfxStatErrMemory;
    inst->effect = index;
    inst->handle = handle;
    OfxPropertySetHandle props;
    char *ofx = NULL;
    E->getPropertySet(handle, &props);
    P->propGetString(props, kOfxImageEffectPropContext, 0, &ofx);
    if (our_context(ofx, inst->context, sizeof inst->context) ||
        !(inst->desc = descriptor(index, inst->context))) {
        free(inst);
        return kOfxStatErrMissingHostFeature;
    }
    E->clipGetHandle(handle, "Source", &inst->source, NULL);
    E->clipGetHandle(handle, "Output", &inst->output, NULL);
    const JsonValue *clips = json_get(inst->desc, "clips");
    for (size_t i = 0; clips && i < clips->count; i++) {
        const JsonValue *clip = json_at(clips, i);
        if (!strcmp(json_str(json_get(clip, "name"), ""), "Source"))
            inst->temporal = json_bool(json_get(clip, "temporal_access"), 0);
    }
    OfxParamSetHandle set;
    E->getParamSet(handle, &set);
    const JsonValue *params = json_get(inst->desc, "params");
    for (size_t i = 0; params && i < params->count && i < MAX_PARAMS; i++) {
        const char *name = json_str(json_get(json_at(params, i), "name"), "");
        if (A->paramGetHandle(set, name, &inst->params[inst->nparams], NULL) == kOfxStatOK)
            inst->nparams++;
        else
            inst->params[inst->nparams++] = NULL;
    }
    P->propSetPointer(props, kOfxPropInstanceData, 0, inst);
    return kOfxStatOK;
}

/* Start a request's header: {"op": op, "instance": the server's number (when inst is given). */
static void begin_request(JsonOut *h, const char *op, const Instance *inst) {
    json_out_init(h);
    json_out_open(h, '{');
    json_out_key(h, "op");
    json_out_string(h, op);
    if (inst) {
        json_out_key(h, "instance");
        json_out_number(h, inst->server_id);
    }
}

/* The reply of one request, or -1 with err set (a link failure or the server's refusal). */
static int ask(Link *link, JsonOut *header, const void *const *parts, const size_t *sizes,
               size_t nparts, double timeout, Reply *reply, char *err, size_t errlen) {
    if (header->failed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (link_request(link, header->data, parts, sizes, nparts, timeout, reply, err, errlen))
        return -1;
    const char *refused = reply_error(reply);
    if (refused) {
        snprintf(err, errlen, "%s", refused);
        reply_free(reply);
        return -1;
    }
    return 0;
}

/* The deadline of a render: VSTPIPE_OFX_TIMEOUT seconds (a first render loads a model). */
static double render_seconds(void) { return link_seconds("VSTPIPE_OFX_TIMEOUT", RENDER_SECONDS); }

/* The deadline of the other requests, which only look things up: a minute, or less when
 * VSTPIPE_OFX_TIMEOUT says less. */
static double request_seconds(void) {
    double render = render_seconds();
    return render < REQUEST_SECONDS ? render : REQUEST_SECONDS;
}

/* Destroy the instance on the server it was created on, if that one still runs (with the
 * link's lock held; a failure leaves nothing to undo). */
static void destroy_on_server(Link *link, Instance *inst) {
    if (!link_up(link) || inst->generation != link_generation(link)) return;
    JsonOut h;
    Reply reply;
    char err[ERR];
    begin_request(&h, "destroy", inst);
    json_out_close(&h, '}');
    if (!ask(link, &h, NULL, NULL, 0, request_seconds(), &reply, err, sizeof err))
        reply_free(&reply);
    json_out_free(&h);
    inst->generation = 0;
}

/* The instance on the current server, created (again) when the server is new or the Source's
 * size or depth changed. With the link's lock held. */
static int ensure_created(Link *link, Instance *inst, double time, char *err, size_t errlen) {
    OfxRectD rod;
    OfxPropertySetHandle clip_props;
    char *ofx_depth = NULL;
    if (!inst->source || E->clipGetRegionOfDefinition(inst->source, time, &rod) ||
        E->clipGetPropertySet(inst->source, &clip_props) ||
        P->propGetString(clip_props, kOfxImageEffectPropPixelDepth, 0, &ofx_depth)) {
        snprintf(err, errlen, "the Source clip has no image at frame %g; connect one", time);
        return -1;
    }
    const char *depth = depth_name(ofx_depth);
    if (!depth) {
        snprintf(err, errlen, "the Source clip's pixel depth %s is not one vstpipe renders",
                 ofx_depth ? ofx_depth : "(none)");
        return -1;
    }
    int x1 = (int)floor(rod.x1), y1 = (int)floor(rod.y1);
    int width = (int)ceil(rod.x2) - x1, height = (int)ceil(rod.y2) - y1;
    if (width <= 0 || height <= 0) {
        snprintf(err, errlen, "the Source clip is empty at frame %g", time);
        return -1;
    }
    int same = link_up(link) && inst->generation == link_generation(link) && width == inst->width &&
               height == inst->height && !strcmp(depth, inst->depth);
    if (same) {
        inst->x1 = x1;
        inst->y1 = y1;
        return 0;
    }
    Reply reply;
    JsonOut h;
    destroy_on_server(link, inst);  /* the old instance goes: its size or depth changed */
    double rate = 0, range[2] = {0, 0};
    P->propGetDouble(clip_props, kOfxImageEffectPropFrameRate, 0, &rate);
    int has_range = P->propGetDoubleN(clip_props, kOfxImageEffectPropFrameRange, 2, range) ==
                    kOfxStatOK && range[1] >= range[0];
    begin_request(&h, "create", NULL);
    json_out_key(&h, "effect"); json_out_string(&h, g_effects[inst->effect].plugin.pluginIdentifier);
    json_out_key(&h, "context"); json_out_string(&h, inst->context);
    json_out_key(&h, "width"); json_out_number(&h, width);
    json_out_key(&h, "height"); json_out_number(&h, height);
    json_out_key(&h, "depth"); json_out_string(&h, depth);
    json_out_key(&h, "frame_rate"); json_out_number(&h, rate > 0 ? rate : 0);
    if (has_range) {
        json_out_key(&h, "frame_range");
        json_out_open(&h, '[');
        json_out_number(&h, range[0]);
        json_out_number(&h, range[1]);
        json_out_close(&h, ']');
    }
    json_out_close(&h, '}');
    int rc = ask(link, &h, NULL, NULL, 0, request_seconds(), &reply, err, errlen);
    json_out_free(&h);
    if (rc) return -1;
    inst->server_id = json_num(json_get(reply.header.root, "instance"), 0);
    reply_free(&reply);
    inst->generation = link_generation(link);
    inst->x1 = x1;
    inst->y1 = y1;
    inst->width = width;
    inst->height = height;
    snprintf(inst->depth, sizeof inst->depth, "%s", depth);
    free(inst->last_set);
    inst->last_set = NULL;
    inst->nsent = 0;
    return 0;
}

/* One parameter's value at `time`, written as JSON. */
static int write_value(JsonOut *h, OfxParamHandle param, const JsonValue *p, double time) {
    const char *type = json_str(json_get(p, "type"), "");
    if (!strcmp(type, "double")) {
        double v = 0;
        if (A->paramGetValueAtTime(param, time, &v)) return -1;
        json_out_number(h, v);
    } else if (!strcmp(type, "integer") || !strcmp(type, "boolean") || !strcmp(type, "choice")) {
        int v = 0;
        if (A->paramGetValueAtTime(param, time, &v)) return -1;
        if (!strcmp(type, "boolean")) json_out_bool(h, v != 0);
        else if (!strcmp(type, "choice"))
            json_out_string(h, json_str(json_at(json_get(p, "options"), (size_t)(v < 0 ? 0 : v)),
                                        json_str(json_get(p, "default"), "")));
        else json_out_number(h, v);
    } else {
        char *v = NULL;
        if (A->paramGetValueAtTime(param, time, &v)) return -1;
        json_out_string(h, v ? v : "");
    }
    return 0;
}

/* Send the parameters as the host has them at `time`: a constant value each, or for an
 * animated one its keyframes plus its value at `time` (so the effect sees the host's curve where
 * it renders, whatever the curve's shape between keys). Skipped when nothing changed. */
static int send_params(Link *link, Instance *inst, double time, char *err, size_t errlen) {
    const JsonValue *params = json_get(inst->desc, "params");
    JsonOut h;
    begin_request(&h, "set", inst);
    for (int pass = 0; pass < 2; pass++) {  /* constants, then keyframes */
        json_out_key(&h, pass ? "keyframes" : "params");
        json_out_open(&h, '{');
        for (int i = 0; i < inst->nparams; i++) {
            const JsonValue *p = json_at(params, (size_t)i);
            OfxParamHandle param = inst->params[i];
            unsigned keys = 0;
            if (!param) continue;
            if (json_bool(json_get(p, "animatable"), 0)) A->paramGetNumKeys(param, &keys);
            if ((keys > 0) != pass) continue;
            json_out_key(&h, json_str(json_get(p, "name"), ""));
            if (!pass) {
                if (write_value(&h, param, p, time)) json_out_string(&h, "");
                continue;
            }
            json_out_open(&h, '[');
            int at_time = 0;
            for (unsigned k = 0; k < keys; k++) {
                double t;
                if (A->paramGetKeyTime(param, k, &t)) continue;
                at_time |= t == time;
                json_out_open(&h, '[');
                json_out_number(&h, t);
                write_value(&h, param, p, t);
                json_out_close(&h, ']');
            }
            if (!at_time) {
                json_out_open(&h, '[');
                json_out_number(&h, time);
                write_value(&h, param, p, time);
                json_out_close(&h, ']');
            }
            json_out_close(&h, ']');
        }
        json_out_close(&h, '}');
    }
    json_out_close(&h, '}');
    int rc = 0;
    if (h.failed) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    } else if (!inst->last_set || strcmp(inst->last_set, h.data)) {
        Reply reply;
        rc = ask(link, &h, NULL, NULL, 0, request_seconds(), &reply, err, errlen);
        if (!rc) {
            reply_free(&reply);
            free(inst->last_set);
            inst->last_set = strdup(h.data);
        }
    }
    json_out_free(&h);
    return rc;
}

/* The times the effect reads the Source at when rendering `time` (the server's frames_needed),
 * `time` first. */
static int frames_needed(Link *link, Instance *inst, double time, double *times, int *count,
                         char *err, size_t errlen) {
    times[0] = time;
    *count = 1;
    if (!inst->temporal) return 0;
    JsonOut h;
    begin_request(&h, "frames_needed", inst);
    json_out_key(&h, "time"); json_out_number(&h, time);
    json_out_close(&h, '}');
    Reply reply;
    int rc = ask(link, &h, NULL, NULL, 0, request_seconds(), &reply, err, errlen);
    json_out_free(&h);
    if (rc) return -1;
    const JsonValue *ranges = json_get(json_get(reply.header.root, "frames"), "Source");
    for (size_t i = 0; ranges && i < ranges->count; i++) {
        const JsonValue *pair = json_at(ranges, i);
        double first = json_num(json_at(pair, 0), time), last = json_num(json_at(pair, 1), time);
        for (double t = first; t <= last && *count < MAX_FRAMES; t += 1.0)
            if (t != time) times[(*count)++] = t;
    }
    reply_free(&reply);
    return 0;
}

/* -- pixels --------------------------------------------------------------------------------- */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (!man) bits = sign;
        else {  /* subnormal */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000 | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t sign = (bits >> 16) & 0x8000;
    int32_t exp = (int32_t)((bits >> 23) & 0xFF) - 127 + 15;
    uint32_t man = bits & 0x7FFFFF;
    if (((bits >> 23) & 0xFF) == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7C00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        if ((man >> (shift - 1)) & 1) half++;  /* round half up */
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    if (man & 0x1000) half++;  /* round to nearest */
    return (uint16_t)half;
}

static float load_sample(const unsigned char *p, const char *depth) {
    switch (depth[0]) {
    case 'b': return *p / 255.0f;
    case 's': { uint16_t v; memcpy(&v, p, 2); return v / 65535.0f; }
    case 'h': { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    default: { float v; memcpy(&v, p, 4); return v; }
    }
}

static void store_sample(unsigned char *p, const char *depth, float v) {
    switch (depth[0]) {
    case 'b': *p = (unsigned char)(v <= 0 ? 0 : v >= 1 ? 255 : lrintf(v * 255.0f)); break;
    case 's': {
        uint16_t s = (uint16_t)(v <= 0 ? 0 : v >= 1 ? 65535 : lrintf(v * 65535.0f));
        memcpy(p, &s, 2);
        break;
    }
    case 'h': { uint16_t s = float_to_half(v); memcpy(p, &s, 2); break; }
    default: memcpy(p, &v, 4);
    }
}

/* Colour of `pixels` RGBA pixels divided by (unpremultiply) or multiplied by their alpha. */
static void alpha_pass(unsigned char *row, int pixels, const char *depth, int divide) {
    int s = sample_bytes(depth);
    for (int x = 0; x < pixels; x++, row += 4 * s) {
        float a = load_sample(row + 3 * s, depth);
        if (a == 1.0f || (divide && a <= 0.0f)) continue;
        for (int c = 0; c < 3; c++) {
            float v = load_sample(row + c * s, depth);
            store_sample(row + c * s, depth, divide ? v / a : v * a);
        }
    }
}

typedef struct HostImage {
    OfxPropertySetHandle handle;
    unsigned char *data;
    int bounds[4];
    int row_bytes;
    int premultiplied;
    char uid[128];
} HostImage;

static int fetch_image(OfxImageClipHandle clip, double time, HostImage *img, const char *depth,
                       char *err, size_t errlen) {
    memset(img, 0, sizeof *img);
    if (E->clipGetImage(clip, time, NULL, &img->handle) || !img->handle) {
        img->handle = NULL;
        snprintf(err, errlen, "the host gave no image at frame %g", time);
        return -1;
    }
    void *data = NULL;
    char *text = NULL;
    P->propGetPointer(img->handle, kOfxImagePropData, 0, &data);
    P->propGetIntN(img->handle, kOfxImagePropBounds, 4, img->bounds);
    P->propGetInt(img->handle, kOfxImagePropRowBytes, 0, &img->row_bytes);
    img->data = data;
    if (P->propGetString(img->handle, kOfxImageEffectPropPreMultiplication, 0, &text) == kOfxStatOK
        && text)
        img->premultiplied = !strcmp(text, kOfxImagePreMultiplied);
    text = NULL;
    if (P->propGetString(img->handle, kOfxImagePropUniqueIdentifier, 0, &text) == kOfxStatOK &&
        text)
        snprintf(img->uid, sizeof img->uid, "%s", text);
    text = NULL;
    const char *got = NULL;
    if (P->propGetString(img->handle, kOfxImageEffectPropPixelDepth, 0, &text) == kOfxStatOK)
        got = depth_name(text);
    int width = img->bounds[2] - img->bounds[0];
    if (!img->data || width < 0 || img->bounds[3] < img->bounds[1] ||
        (got && strcmp(got, depth)) ||
        abs(img->row_bytes) < width * 4 * sample_bytes(depth)) {
        E->clipReleaseImage(img->handle);
        img->handle = NULL;
        snprintf(err, errlen, "the host's image at frame %g is not %s RGBA with its rows in "
                 "bounds", time, depth);
        return -1;
    }
    return 0;
}

static void release_image(HostImage *img) {
    if (img->handle) E->clipReleaseImage(img->handle);
    img->handle = NULL;
}

static unsigned char *row_at(const HostImage *img, int y) {
    return img->data + (ptrdiff_t)(y - img->bounds[1]) * img->row_bytes;
}

/* The Source frame as the protocol takes it: width x height RGBA rows, bottom row first, of
 * the instance's region of definition; rows straight from the host's memory where it can
 * (parts point into it), else through `copy` (bounds that do not cover the frame, or colour to
 * unpremultiply). */
static int frame_parts(const Instance *inst, const HostImage *img, const void **parts,
                       size_t *sizes, size_t *nparts, unsigned char **copy) {
    size_t row = (size_t)inst->width * 4 * (size_t)sample_bytes(inst->depth);
    int x1 = inst->x1, y1 = inst->y1, x2 = x1 + inst->width, y2 = y1 + inst->height;
    int covers = img->bounds[0] <= x1 && img->bounds[1] <= y1 && img->bounds[2] >= x2 &&
                 img->bounds[3] >= y2;
    *copy = NULL;
    if (covers && !img->premultiplied && img->row_bytes == (int)row &&
        img->bounds[0] == x1 && img->bounds[2] == x2) {  /* the frame is one block of memory */
        parts[*nparts] = row_at(img, y1);
        sizes[(*nparts)++] = row * (size_t)inst->height;
        return 0;
    }
    if (covers && !img->premultiplied) {
        for (int y = y1; y < y2; y++) {
            parts[*nparts] = row_at(img, y) + (size_t)(x1 - img->bounds[0]) * 4 *
                             (size_t)sample_bytes(inst->depth);
            sizes[(*nparts)++] = row;
        }
        return 0;
    }
    unsigned char *frame = calloc((size_t)inst->height, row);
    if (!frame) return -1;
    int s = 4 * sample_bytes(inst->depth);
    int cx1 = img->bounds[0] > x1 ? img->bounds[0] : x1;
    int cx2 = img->bounds[2] < x2 ? img->bounds[2] : x2;
    for (int y = y1; y < y2 && cx2 > cx1; y++) {
        if (y < img->bounds[1] || y >= img->bounds[3]) continue;
        unsigned char *dst = frame + (size_t)(y - y1) * row + (size_t)(cx1 - x1) * (size_t)s;
        memcpy(dst, row_at(img, y) + (size_t)(cx1 - img->bounds[0]) * (size_t)s,
               (size_t)(cx2 - cx1) * (size_t)s);
        if (img->premultiplied) alpha_pass(dst, cx2 - cx1, inst->depth, 1);
    }
    parts[*nparts] = frame;
    sizes[(*nparts)++] = row * (size_t)inst->height;
    *copy = frame;
    return 0;
}

static int was_sent(const Instance *inst, double time, const char *uid) {
    if (!*uid) return 0;
    for (int i = 0; i < inst->nsent; i++)
        if (inst->sent[i].time == time && !strcmp(inst->sent[i].uid, uid)) return 1;
    return 0;
}

/* What the server keeps after a render: the frames inside the span the effect needs. */
static void remember(Instance *inst, const double *times, int count, const HostImage *imgs,
                     const int *sent) {
    double first = times[0], last = times[0];
    for (int i = 1; i < count; i++) {
        if (times[i] < first) first = times[i];
        if (times[i] > last) last = times[i];
    }
    int k = 0;
    for (int i = 0; i < inst->nsent; i++) {
        int replaced = 0;
        for (int j = 0; j < count; j++) replaced |= sent[j] && times[j] == inst->sent[i].time;
        if (!replaced && inst->sent[i].time >= first && inst->sent[i].time <= last)
            inst->sent[k++] = inst->sent[i];
    }
    for (int j = 0; j < count && k < MAX_FRAMES; j++) {
        if (!sent[j] || !*imgs[j].uid) continue;
        inst->sent[k].time = times[j];
        snprintf(inst->sent[k].uid, sizeof inst->sent[k].uid, "%s", imgs[j].uid);
        k++;
    }
    inst->nsent = k;
}

/* -- render --------------------------------------------------------------------------------- */

static int render_locked(Link *link, Instance *inst, double time, const int *window, char *err,
                         size_t errlen) {
    if (ensure_created(link, inst, time, err, errlen) ||
        send_params(link, inst, time, err, errlen))
        return -1;
    double times[MAX_FRAMES];
    int count = 0;
    if (frames_needed(link, inst, time, times, &count, err, errlen)) return -1;
    HostImage imgs[MAX_FRAMES];
    int sent[MAX_FRAMES] = {0};
    unsigned char *copies[MAX_FRAMES] = {0};
    int fetched = 0, rc = -1, premultiplied = 0;
    size_t cap = (size_t)count * ((size_t)inst->height + 1);
    const void **parts = malloc(cap * sizeof *parts);
    size_t *sizes = malloc(cap * sizeof *sizes);
    Reply reply = {0};
    HostImage out = {0};
    if (!parts || !sizes) { snprintf(err, errlen, "out of memory"); goto done; }
    if (fetch_image(inst->output, time, &out, inst->depth, err, errlen)) goto done;
    /* where the reply can land without a copy: the window's rows, one block in the Output */
    size_t px = 4 * (size_t)sample_bytes(inst->depth);
    size_t win_row = (size_t)(window[2] - window[0]) * px;
    void *into = NULL;
    size_t into_size = 0;
    if (out.bounds[0] == window[0] && out.bounds[2] == window[2] && out.bounds[1] <= window[1] &&
        out.bounds[3] >= window[3] && out.row_bytes == (int)win_row && window[3] > window[1]) {
        into = row_at(&out, window[1]);
        into_size = win_row * (size_t)(window[3] - window[1]);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t nparts = 0;
        JsonOut h;
        begin_request(&h, "render", inst);
        json_out_key(&h, "time"); json_out_number(&h, time);
        json_out_key(&h, "window");
        json_out_open(&h, '[');
        json_out_number(&h, window[0] - inst->x1);
        json_out_number(&h, window[1] - inst->y1);
        json_out_number(&h, window[2] - inst->x1);
        json_out_number(&h, window[3] - inst->y1);
        json_out_close(&h, ']');
        json_out_key(&h, "images");
        json_out_open(&h, '[');
        for (int i = 0; i < count; i++) {
            if (i >= fetched) {
                char why[256];
                if (fetch_image(inst->source, times[i], &imgs[i], inst->depth, why, sizeof why)) {
                    if (i == 0) {  /* the frame rendered: required; history: the effect copes */
                        snprintf(err, errlen, "Source: %s", why);
                        json_out_free(&h);
                        goto done;
                    }
                    imgs[i].handle = NULL;
                }
                fetched = i + 1;
            }
            if (i == 0) premultiplied = imgs[0].premultiplied;
            sent[i] = imgs[i].handle && (attempt > 0 || !was_sent(inst, times[i], imgs[i].uid));
            if (!sent[i]) continue;
            if (copies[i]) {  /* made on the first attempt */
                parts[nparts] = copies[i];
                sizes[nparts++] = (size_t)inst->width * (size_t)inst->height * 4 *
                                  (size_t)sample_bytes(inst->depth);
            } else if (frame_parts(inst, &imgs[i], parts, sizes, &nparts, &copies[i])) {
                snprintf(err, errlen, "out of memory");
                json_out_free(&h);
                goto done;
            }
            json_out_open(&h, '{');
            json_out_key(&h, "clip"); json_out_string(&h, "Source");
            json_out_key(&h, "time"); json_out_number(&h, times[i]);
            json_out_close(&h, '}');
        }
        json_out_close(&h, ']');
        json_out_close(&h, '}');
        if (h.failed) {
            snprintf(err, errlen, "out of memory");
            json_out_free(&h);
            goto done;
        }
        int asked = link_request_into(link, h.data, parts, sizes, nparts, render_seconds(),
                                      into, into_size, &reply, err, errlen);
        if (!asked && reply_error(&reply)) {
            snprintf(err, errlen, "%s", reply_error(&reply));
            reply_free(&reply);
            asked = -1;
        }
        json_out_free(&h);
        if (!asked) break;
        /* a frame the bridge thought the server kept was not there: send them all once more */
        if (attempt == 0 && link_up(link) && strstr(err, "no Source frame")) {
            inst->nsent = 0;
            continue;
        }
        goto done;
    }
    if (!reply.header.root) goto done;
    /* the window's pixels into the Output image */
    const JsonValue *got = json_get(reply.header.root, "window");
    int w[4];
    for (int i = 0; i < 4; i++) w[i] = (int)json_num(json_at(got, (size_t)i), 0);
    size_t row = (size_t)(w[2] - w[0]) * px;
    if (w[2] < w[0] || w[3] < w[1] || reply.bytes != row * (size_t)(w[3] - w[1])) {
        snprintf(err, errlen, "vstpipe serve answered with %zu bytes for a %dx%d window", reply.bytes,
                 w[2] - w[0], w[3] - w[1]);
        goto done;
    }
    if (!reply.payload) {  /* received in place: it must be the window asked for */
        if (w[0] + inst->x1 != window[0] || w[1] + inst->y1 != window[1] ||
            w[2] + inst->x1 != window[2] || w[3] + inst->y1 != window[3]) {
            snprintf(err, errlen, "vstpipe serve answered another window than the one asked for");
            goto done;
        }
        if (premultiplied)
            for (int y = window[1]; y < window[3]; y++)
                alpha_pass(row_at(&out, y), window[2] - window[0], inst->depth, 0);
        remember(inst, times, count, imgs, sent);
        rc = 0;
        goto done;
    }
    int ox1 = w[0] + inst->x1, oy1 = w[1] + inst->y1, ox2 = w[2] + inst->x1, oy2 = w[3] + inst->y1;
    int cx1 = ox1 > out.bounds[0] ? ox1 : out.bounds[0], cx2 = ox2 < out.bounds[2] ? ox2 : out.bounds[2];
    for (int y = oy1; y < oy2 && cx2 > cx1; y++) {
        if (y < out.bounds[1] || y >= out.bounds[3]) continue;
        unsigned char *dst = row_at(&out, y) + (size_t)(cx1 - out.bounds[0]) * px;
        memcpy(dst, reply.payload + (size_t)(y - oy1) * row + (size_t)(cx1 - ox1) * px,
               (size_t)(cx2 - cx1) * px);
        if (premultiplied) alpha_pass(dst, cx2 - cx1, inst->depth, 0);
    }
    remember(inst, times, count, imgs, sent);
    rc = 0;
done:
    release_image(&out);
    reply_free(&reply);
    for (int i = 0; i < fetched; i++) release_image(&imgs[i]);
    for (int i = 0; i < count; i++) free(copies[i]);
    free(parts);
    free(sizes);
    return rc;
}

static void report(Instance *inst, const char *error) {
    char line[ERR + 64];
    snprintf(line, sizeof line, "%s: %s", g_effects[inst->effect].plugin.pluginIdentifier, error);
    say(line);
    if (!M) return;
    M->message(inst->handle, kOfxMessageError, "vstpipe", "%s", line);
    if (g_message_version >= 2) {
        M->setPersistentMessage(inst->handle, kOfxMessageError, "vstpipe", "%s", line);
        inst->messages = 1;
    }
}

static void clear_report(Instance *inst) {
    if (inst->messages && M && g_message_version >= 2) M->clearPersistentMessage(inst->handle);
    inst->messages = 0;
}

typedef int (*Step)(Link *, Instance *, OfxPropertySetHandle, OfxPropertySetHandle, char *,
                    size_t);

/* Run one action's requests with the link's lock held; failures are reported to the host. */
static OfxStatus with_link(OfxImageEffectHandle handle, Step step, OfxPropertySetHandle in,
                           OfxPropertySetHandle out) {
    Instance *inst = instance_of(handle);
    if (!inst) return kOfxStatErrBadHandle;
    char err[ERR] = "";
    Link *link = the_link(err, sizeof err);
    int rc = -1;
    if (link) {
        link_lock(link);
        rc = step(link, inst, in, out, err, sizeof err);
        link_unlock(link);
    }
    if (rc) {
        report(inst, err);
        return kOfxStatFailed;
    }
    clear_report(inst);
    return kOfxStatOK;
}

static int step_render(Link *link, Instance *inst, OfxPropertySetHandle in,
                       OfxPropertySetHandle out, char *err, size_t errlen) {
    (void)out;
    double time = 0;
    int window[4];
    P->propGetDouble(in, kOfxPropTime, 0, &time);
    if (P->propGetIntN(in, kOfxImageEffectPropRenderWindow, 4, window)) {
        snprintf(err, errlen, "the host sent no render window");
        return -1;
    }
    return render_locked(link, inst, time, window, err, errlen);
}

static int step_sequence(Link *link, Instance *inst, OfxPropertySetHandle in, const char *op,
                         char *err, size_t errlen) {
    double range[2] = {0, 0};
    P->propGetDoubleN(in, kOfxImageEffectPropFrameRange, 2, range);
    if (ensure_created(link, inst, range[0], err, errlen)) return -1;
    if (!strcmp(op, "begin") && send_params(link, inst, range[0], err, errlen)) return -1;
    JsonOut h;
    begin_request(&h, op, inst);
    json_out_key(&h, "frame_range");
    json_out_open(&h, '[');
    json_out_number(&h, range[0]);
    json_out_number(&h, range[1] >= range[0] ? range[1] : range[0]);
    json_out_close(&h, ']');
    json_out_close(&h, '}');
    Reply reply;
    int rc = ask(link, &h, NULL, NULL, 0, request_seconds(), &reply, err, errlen);
    json_out_free(&h);
    if (!rc) reply_free(&reply);
    return rc;
}

static int step_begin(Link *link, Instance *inst, OfxPropertySetHandle in,
                      OfxPropertySetHandle out, char *err, size_t errlen) {
    (void)out;
    return step_sequence(link, inst, in, "begin", err, errlen);
}

static int step_end(Link *link, Instance *inst, OfxPropertySetHandle in,
                    OfxPropertySetHandle out, char *err, size_t errlen) {
    (void)out;
    return step_sequence(link, inst, in, "end", err, errlen);
}

static int step_frames(Link *link, Instance *inst, OfxPropertySetHandle in,
                       OfxPropertySetHandle out, char *err, size_t errlen) {
    double time = 0, times[MAX_FRAMES], ranges[2 * MAX_FRAMES];
    int count = 0;
    P->propGetDouble(in, kOfxPropTime, 0, &time);
    if (ensure_created(link, inst, time, err, errlen) ||
        frames_needed(link, inst, time, times, &count, err, errlen))
        return -1;
    for (int i = 0; i < count; i++) ranges[2 * i] = ranges[2 * i + 1] = times[i];
    P->propSetDoubleN(out, "OfxImageClipPropFrameRange_Source", 2 * count, ranges);
    return 0;
}

static void destroy_instance(OfxImageEffectHandle handle) {
    Instance *inst = instance_of(handle);
    if (!inst) return;
    pthread_mutex_lock(&g_state);
    Link *link = g_link;
    pthread_mutex_unlock(&g_state);
    if (link) {
        link_lock(link);
        destroy_on_server(link, inst);
        link_unlock(link);
    }
    OfxPropertySetHandle props;
    if (!E->getPropertySet(handle, &props)) P->propSetPointer(props, kOfxPropInstanceData, 0, NULL);
    free(inst->last_set);
    free(inst);
}

static OfxStatus regions_of_interest(OfxImageEffectHandle handle, OfxPropertySetHandle in,
                                     OfxPropertySetHandle out) {
    Instance *inst = instance_of(handle);
    double time = 0;
    OfxRectD rod;
    P->propGetDouble(in, kOfxPropTime, 0, &time);
    if (!inst || !inst->source || E->clipGetRegionOfDefinition(inst->source, time, &rod))
        return kOfxStatReplyDefault;
    double rect[4] = {rod.x1, rod.y1, rod.x2, rod.y2}; /* the bridge sends whole frames */
    P->propSetDoubleN(out, "OfxImageClipPropRoI_Source", 4, rect);
    return kOfxStatOK;
}

/* The library goes (the host unloads the binary): what it read and started goes with it. */
__attribute__((destructor)) static void library_unloaded(void) {
    link_free(g_link);
    g_link = NULL;
    if (g_catalog_read == 1) json_free(&g_catalog);
    g_catalog_read = 0;
    g_count = 0;
}

/* -- the entry point ------------------------------------------------------------------------ */

static OfxStatus load(void) {
    pthread_mutex_lock(&g_state);
    OfxStatus status = kOfxStatOK;
    if (g_loads++ == 0) {
        if (!g_host) status = kOfxStatErrMissingHostFeature;
        else {
            P = g_host->fetchSuite(g_host->host, kOfxPropertySuite, 1);
            E = g_host->fetchSuite(g_host->host, kOfxImageEffectSuite, 1);
            A = g_host->fetchSuite(g_host->host, kOfxParameterSuite, 1);
            M = g_host->fetchSuite(g_host->host, kOfxMessageSuite, 2);
            g_message_version = M ? 2 : 0;
            if (!M) {
                M = g_host->fetchSuite(g_host->host, kOfxMessageSuite, 1);
                g_message_version = M ? 1 : 0;
            }
            if (!P || !E || !A) status = kOfxStatErrMissingHostFeature;
        }
        if (status != kOfxStatOK) g_loads = 0;
    }
    pthread_mutex_unlock(&g_state);
    return status;
}

static OfxStatus unload(void) {
    pthread_mutex_lock(&g_state);
    Link *gone = NULL;
    if (g_loads > 0 && --g_loads == 0) {
        gone = g_link;
        g_link = NULL;
    }
    pthread_mutex_unlock(&g_state);
    link_free(gone);  /* the server sees its input end and quits */
    return kOfxStatOK;
}

static OfxStatus entry(int index, const char *action, const void *handle,
                       OfxPropertySetHandle in, OfxPropertySetHandle out) {
    OfxImageEffectHandle effect = (OfxImageEffectHandle)handle;
    if (!strcmp(action, kOfxActionLoad)) return load();
    if (!strcmp(action, kOfxActionUnload)) return unload();
    if (!P || !E || !A) return kOfxStatErrMissingHostFeature;
    if (!strcmp(action, kOfxActionDescribe)) return describe(index, effect);
    if (!strcmp(action, kOfxImageEffectActionDescribeInContext))
        return describe_in_context(index, effect, in);
    if (!strcmp(action, kOfxActionCreateInstance)) return create_instance(index, effect);
    if (!strcmp(action, kOfxActionDestroyInstance)) {
        destroy_instance(effect);
        return kOfxStatOK;
    }
    if (!strcmp(action, kOfxImageEffectActionRender))
        return with_link(effect, step_render, in, out);
    if (!strcmp(action, kOfxImageEffectActionBeginSequenceRender))
        return with_link(effect, step_begin, in, out);
    if (!strcmp(action, kOfxImageEffectActionEndSequenceRender))
        return with_link(effect, step_end, in, out);
    if (!strcmp(action, kOfxImageEffectActionGetRegionsOfInterest))
        return regions_of_interest(effect, in, out);
    if (!strcmp(action, kOfxImageEffectActionGetFramesNeeded)) {
        Instance *inst = instance_of(effect);
        if (!inst || !inst->temporal) return kOfxStatReplyDefault;
        return with_link(effect, step_frames, in, out);
    }
    return kOfxStatReplyDefault;
}
