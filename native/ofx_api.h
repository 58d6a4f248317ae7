/* The parts of the OpenFX 1.4/1.5 C API this bridge uses, declared from the published
 * specification (openfx.readthedocs.io, "OpenFX Programming Reference"). Suite members are in
 * the specification's order, which is what makes them binary compatible with every host. */
#ifndef VSTPIPE_OFX_API_H
#define VSTPIPE_OFX_API_H

#include <stddef.h>

#if defined(_WIN32)
#define OFX_EXPORT __declspec(dllexport)
#else
#define OFX_EXPORT __attribute__((visibility("default")))
#endif

typedef int OfxStatus;
typedef double OfxTime;
typedef struct OfxPropertySetStruct *OfxPropertySetHandle;
typedef struct OfxImageEffectStruct *OfxImageEffectHandle;
typedef struct OfxImageClipStruct *OfxImageClipHandle;
typedef struct OfxImageMemoryStruct *OfxImageMemoryHandle;
typedef struct OfxParamStruct *OfxParamHandle;
typedef struct OfxParamSetStruct *OfxParamSetHandle;

typedef struct { double x1, y1, x2, y2; } OfxRectD;
typedef struct { int x1, y1, x2, y2; } OfxRectI;

enum {
    kOfxStatOK = 0, kOfxStatFailed = 1, kOfxStatErrFatal = 2, kOfxStatErrUnknown = 3,
    kOfxStatErrMissingHostFeature = 4, kOfxStatErrUnsupported = 5, kOfxStatErrExists = 6,
    kOfxStatErrFormat = 7, kOfxStatErrMemory = 8, kOfxStatErrBadHandle = 9,
    kOfxStatErrBadIndex = 10, kOfxStatErrValue = 11, kOfxStatReplyYes = 12,
    kOfxStatReplyNo = 13, kOfxStatReplyDefault = 14
};

typedef OfxStatus(OfxPluginEntryPoint)(const char *action, const void *handle,
                                       OfxPropertySetHandle inArgs, OfxPropertySetHandle outArgs);

typedef struct OfxHost {
    OfxPropertySetHandle host;
    const void *(*fetchSuite)(OfxPropertySetHandle host, const char *suiteName, int suiteVersion);
} OfxHost;

typedef struct OfxPlugin {
    const char *pluginApi;
    int apiVersion;
    const char *pluginIdentifier;
    unsigned int pluginVersionMajor;
    unsigned int pluginVersionMinor;
    void (*setHost)(OfxHost *host);
    OfxPluginEntryPoint *mainEntry;
} OfxPlugin;

typedef struct OfxPropertySuiteV1 {
    OfxStatus (*propSetPointer)(OfxPropertySetHandle, const char *, int, void *);
    OfxStatus (*propSetString)(OfxPropertySetHandle, const char *, int, const char *);
    OfxStatus (*propSetDouble)(OfxPropertySetHandle, const char *, int, double);
    OfxStatus (*propSetInt)(OfxPropertySetHandle, const char *, int, int);
    OfxStatus (*propSetPointerN)(OfxPropertySetHandle, const char *, int, void *const *);
    OfxStatus (*propSetStringN)(OfxPropertySetHandle, const char *, int, const char *const *);
    OfxStatus (*propSetDoubleN)(OfxPropertySetHandle, const char *, int, const double *);
    OfxStatus (*propSetIntN)(OfxPropertySetHandle, const char *, int, const int *);
    OfxStatus (*propGetPointer)(OfxPropertySetHandle, const char *, int, void **);
    OfxStatus (*propGetString)(OfxPropertySetHandle, const char *, int, char **);
    OfxStatus (*propGetDouble)(OfxPropertySetHandle, const char *, int, double *);
    OfxStatus (*propGetInt)(OfxPropertySetHandle, const char *, int, int *);
    OfxStatus (*propGetPointerN)(OfxPropertySetHandle, const char *, int, void **);
    OfxStatus (*propGetStringN)(OfxPropertySetHandle, const char *, int, char **);
    OfxStatus (*propGetDoubleN)(OfxPropertySetHandle, const char *, int, double *);
    OfxStatus (*propGetIntN)(OfxPropertySetHandle, const char *, int, int *);
    OfxStatus (*propReset)(OfxPropertySetHandle, const char *);
    OfxStatus (*propGetDimension)(OfxPropertySetHandle, const char *, int *);
} OfxPropertySuiteV1;

typedef struct OfxImageEffectSuiteV1 {
    OfxStatus (*getPropertySet)(OfxImageEffectHandle, OfxPropertySetHandle *);
    OfxStatus (*getParamSet)(OfxImageEffectHandle, OfxParamSetHandle *);
    OfxStatus (*clipDefine)(OfxImageEffectHandle, const char *, OfxPropertySetHandle *);
    OfxStatus (*clipGetHandle)(OfxImageEffectHandle, const char *, OfxImageClipHandle *,
                               OfxPropertySetHandle *);
    OfxStatus (*clipGetPropertySet)(OfxImageClipHandle, OfxPropertySetHandle *);
    OfxStatus (*clipGetImage)(OfxImageClipHandle, OfxTime, const OfxRectD *,
                              OfxPropertySetHandle *);
    OfxStatus (*clipReleaseImage)(OfxPropertySetHandle);
    OfxStatus (*clipGetRegionOfDefinition)(OfxImageClipHandle, OfxTime, OfxRectD *);
    int (*abort)(OfxImageEffectHandle);
    OfxStatus (*imageMemoryAlloc)(OfxImageEffectHandle, size_t, OfxImageMemoryHandle *);
    OfxStatus (*imageMemoryFree)(OfxImageMemoryHandle);
    OfxStatus (*imageMemoryLock)(OfxImageMemoryHandle, void **);
    OfxStatus (*imageMemoryUnlock)(OfxImageMemoryHandle);
} OfxImageEffectSuiteV1;

typedef struct OfxParameterSuiteV1 {
    OfxStatus (*paramDefine)(OfxParamSetHandle, const char *, const char *,
                             OfxPropertySetHandle *);
    OfxStatus (*paramGetHandle)(OfxParamSetHandle, const char *, OfxParamHandle *,
                                OfxPropertySetHandle *);
    OfxStatus (*paramSetGetPropertySet)(OfxParamSetHandle, OfxPropertySetHandle *);
    OfxStatus (*paramGetPropertySet)(OfxParamHandle, OfxPropertySetHandle *);
    OfxStatus (*paramGetValue)(OfxParamHandle, ...);
    OfxStatus (*paramGetValueAtTime)(OfxParamHandle, OfxTime, ...);
    OfxStatus (*paramGetDerivative)(OfxParamHandle, OfxTime, ...);
    OfxStatus (*paramGetIntegral)(OfxParamHandle, OfxTime, OfxTime, ...);
    OfxStatus (*paramSetValue)(OfxParamHandle, ...);
    OfxStatus (*paramSetValueAtTime)(OfxParamHandle, OfxTime, ...);
    OfxStatus (*paramGetNumKeys)(OfxParamHandle, unsigned int *);
    OfxStatus (*paramGetKeyTime)(OfxParamHandle, unsigned int, OfxTime *);
    OfxStatus (*paramGetKeyIndex)(OfxParamHandle, OfxTime, int, int *);
    OfxStatus (*paramDeleteKey)(OfxParamHandle, OfxTime);
    OfxStatus (*paramDeleteAllKeys)(OfxParamHandle);
    OfxStatus (*paramCopy)(OfxParamHandle, OfxParamHandle, OfxTime, const void *);
    OfxStatus (*paramEditBegin)(OfxParamSetHandle, const char *);
    OfxStatus (*paramEditEnd)(OfxParamSetHandle);
} OfxParameterSuiteV1;

typedef struct OfxMessageSuiteV2 {
    OfxStatus (*message)(void *, const char *, const char *, const char *, ...);
    OfxStatus (*setPersistentMessage)(void *, const char *, const char *, const char *, ...);
    OfxStatus (*clearPersistentMessage)(void *);
} OfxMessageSuiteV2;

/* Actions */
#define kOfxActionLoad "OfxActionLoad"
#define kOfxActionUnload "OfxActionUnload"
#define kOfxActionDescribe "OfxActionDescribe"
#define kOfxActionCreateInstance "OfxActionCreateInstance"
#define kOfxActionDestroyInstance "OfxActionDestroyInstance"
#define kOfxActionPurgeCaches "OfxActionPurgeCaches"
#define kOfxImageEffectActionDescribeInContext "OfxImageEffectActionDescribeInContext"
#define kOfxImageEffectActionGetRegionsOfInterest "OfxImageEffectActionGetRegionsOfInterest"
#define kOfxImageEffectActionGetFramesNeeded "OfxImageEffectActionGetFramesNeeded"
#define kOfxImageEffectActionRender "OfxImageEffectActionRender"
#define kOfxImageEffectActionBeginSequenceRender "OfxImageEffectActionBeginSequenceRender"
#define kOfxImageEffectActionEndSequenceRender "OfxImageEffectActionEndSequenceRender"

/* Suites */
#define kOfxPropertySuite "OfxPropertySuite"
#define kOfxImageEffectSuite "OfxImageEffectSuite"
#define kOfxParameterSuite "OfxParameterSuite"
#define kOfxMessageSuite "OfxMessageSuite"
#define kOfxImageEffectPluginApi "OfxImageEffectPluginAPI"

/* Properties */
#define kOfxPropLabel "OfxPropLabel"
#define kOfxPropTime "OfxPropTime"
#define kOfxPropInstanceData "OfxPropInstanceData"
#define kOfxPropPluginDescription "OfxPropPluginDescription"
#define kOfxPropVersion "OfxPropVersion"
#define kOfxPropIcon "OfxPropIcon"
#define kOfxImageEffectPluginPropGrouping "OfxImageEffectPluginPropGrouping"
#define kOfxImageEffectPropSupportedContexts "OfxImageEffectPropSupportedContexts"
#define kOfxImageEffectPropContext "OfxImageEffectPropContext"
#define kOfxImageEffectPropSupportedPixelDepths "OfxImageEffectPropSupportedPixelDepths"
#define kOfxImageEffectPropSupportedComponents "OfxImageEffectPropSupportedComponents"
#define kOfxImageEffectPropSupportsTiles "OfxImageEffectPropSupportsTiles"
#define kOfxImageEffectPropSupportsMultiResolution "OfxImageEffectPropSupportsMultiResolution"
#define kOfxImageEffectPropTemporalClipAccess "OfxImageEffectPropTemporalClipAccess"
#define kOfxImageEffectPropSupportsMultipleClipDepths "OfxImageEffectPropMultipleClipDepths"
#define kOfxImageEffectPluginPropSingleInstance "OfxImageEffectPluginPropSingleInstance"
#define kOfxImageEffectPluginRenderThreadSafety "OfxImageEffectPluginRenderThreadSafety"
#define kOfxImageEffectPluginPropHostFrameThreading "OfxImageEffectPluginPropHostFrameThreading"
#define kOfxImageEffectInstancePropSequentialRender "OfxImageEffectInstancePropSequentialRender"
#define kOfxImageEffectPropPixelDepth "OfxImageEffectPropPixelDepth"
#define kOfxImageEffectPropComponents "OfxImageEffectPropComponents"
#define kOfxImageEffectPropPreMultiplication "OfxImageEffectPropPreMultiplication"
#define kOfxImagePreMultiplied "OfxImageAlphaPremultiplied"
#define kOfxImagePropData "OfxImagePropData"
#define kOfxImagePropBounds "OfxImagePropBounds"
#define kOfxImagePropRowBytes "OfxImagePropRowBytes"
#define kOfxImagePropUniqueIdentifier "OfxImagePropUniqueIdentifier"
#define kOfxImageEffectPropRenderWindow "OfxImageEffectPropRenderWindow"
#define kOfxImageEffectPropRenderScale "OfxImageEffectPropRenderScale"
#define kOfxImageEffectPropFrameRange "OfxImageEffectPropFrameRange"
#define kOfxImageEffectPropFrameRate "OfxImageEffectPropFrameRate"
#define kOfxImageClipPropOptional "OfxImageClipPropOptional"
#define kOfxImageClipPropConnected "OfxImageClipPropConnected"

#define kOfxImageEffectRenderUnsafe "OfxImageEffectRenderUnsafe"
#define kOfxImageEffectRenderInstanceSafe "OfxImageEffectRenderInstanceSafe"
#define kOfxImageEffectRenderFullySafe "OfxImageEffectRenderFullySafe"
#define kOfxImageComponentRGBA "OfxImageComponentRGBA"
#define kOfxMessageError "OfxMessageError"

/* Parameters */
#define kOfxParamTypeInteger "OfxParamTypeInteger"
#define kOfxParamTypeDouble "OfxParamTypeDouble"
#define kOfxParamTypeBoolean "OfxParamTypeBoolean"
#define kOfxParamTypeChoice "OfxParamTypeChoice"
#define kOfxParamTypeString "OfxParamTypeString"
#define kOfxParamPropDefault "OfxParamPropDefault"
#define kOfxParamPropAnimates "OfxParamPropAnimates"
#define kOfxParamPropMin "OfxParamPropMin"
#define kOfxParamPropMax "OfxParamPropMax"
#define kOfxParamPropDisplayMin "OfxParamPropDisplayMin"
#define kOfxParamPropDisplayMax "OfxParamPropDisplayMax"
#define kOfxParamPropHint "OfxParamPropHint"
#define kOfxParamPropChoiceOption "OfxParamPropChoiceOption"
#define kOfxParamPropStringMode "OfxParamPropStringMode"
#define kOfxParamStringIsSingleLine "OfxParamStringIsSingleLine"
#define kOfxParamStringIsFilePath "OfxParamStringIsFilePath"
#define kOfxParamPropStringFilePathExists "OfxParamPropStringFilePathExists"

#endif
