// The few NVML declarations Deepwell uses, written from NVIDIA's NVML API reference and checked
// against nvml.h of CUDA 13.0 (driver 580). NVML is loaded at run time (libnvidia-ml.so.1 ships with
// the driver), so no NVML header or library is needed to build.
#pragma once

typedef int dw_nvmlReturn_t;  // NVML_SUCCESS == 0
typedef struct dw_nvmlDevice_st* dw_nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } dw_nvmlUtilization_t;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } dw_nvmlMemory_t;  // v1

enum { DW_NVML_CLOCK_GRAPHICS = 0, DW_NVML_CLOCK_SM = 1, DW_NVML_CLOCK_MEM = 2 };
enum { DW_NVML_TEMPERATURE_GPU = 0 };

typedef dw_nvmlReturn_t (*dw_nvmlInit_v2_t)(void);
typedef const char* (*dw_nvmlErrorString_t)(dw_nvmlReturn_t);
typedef dw_nvmlReturn_t (*dw_nvmlSystemGetDriverVersion_t)(char* version, unsigned int length);
typedef dw_nvmlReturn_t (*dw_nvmlSystemGetNVMLVersion_t)(char* version, unsigned int length);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetHandleByPciBusId_v2_t)(const char* pciBusId, dw_nvmlDevice_t* device);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetClockInfo_t)(dw_nvmlDevice_t device, int type, unsigned int* clockMHz);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetMaxClockInfo_t)(dw_nvmlDevice_t device, int type, unsigned int* clockMHz);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetPowerUsage_t)(dw_nvmlDevice_t device, unsigned int* milliwatts);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetEnforcedPowerLimit_t)(dw_nvmlDevice_t device, unsigned int* milliwatts);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetUtilizationRates_t)(dw_nvmlDevice_t device, dw_nvmlUtilization_t* utilization);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetMemoryInfo_t)(dw_nvmlDevice_t device, dw_nvmlMemory_t* memory);
typedef dw_nvmlReturn_t (*dw_nvmlDeviceGetTemperature_t)(dw_nvmlDevice_t device, int sensor, unsigned int* celsius);
