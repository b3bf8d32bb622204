@rem Starts the Gradle wrapper. Its jar (gradle\wrapper\gradle-wrapper.jar) is a binary this repository does not
@rem carry: create it once with any local Gradle 8 (`gradle wrapper`), or open the project in Android Studio.
@echo off
set APP_HOME=%~dp0
set JAR=%APP_HOME%gradle\wrapper\gradle-wrapper.jar
if not exist "%JAR%" (
    echo error: %JAR% is missing. Run "gradle wrapper --gradle-version 8.7" once in %APP_HOME% ^(needs a local Gradle 8^), or open the project in Android Studio. 1>&2
    exit /b 1
)
if defined JAVA_HOME (set JAVA_EXE=%JAVA_HOME%\bin\java.exe) else (set JAVA_EXE=java.exe)
"%JAVA_EXE%" %JAVA_OPTS% %GRADLE_OPTS% -Dorg.gradle.appname=gradlew -classpath "%JAR%" org.gradle.wrapper.GradleWrapperMain %*
