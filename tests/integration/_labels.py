"""The label on everything the integration tests create, so a later run can find and delete it."""

TEST_LABEL = "rhoai-gpuaas/test"
